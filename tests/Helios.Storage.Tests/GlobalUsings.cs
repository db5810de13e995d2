global using Helios.Storage.Snapshots;
global using Helios.Testing;
