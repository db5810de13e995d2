global using Helios.Export.Adapters.FileStores;
global using Helios.Export.Adapters.JobStores;
global using Helios.Export.Engine;
global using Helios.Export.Files;
global using Helios.Export.Jobs;
global using Helios.Export.Requests;
