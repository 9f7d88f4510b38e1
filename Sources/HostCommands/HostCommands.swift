// HostCommands module.
