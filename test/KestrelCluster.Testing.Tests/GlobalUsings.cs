global using Xunit;
global using KestrelCluster.Tests.Infrastructure;
