global using Helios.Export.Diagnostics;
global using Helios.Export.Jobs;
global using Helios.Testing;
