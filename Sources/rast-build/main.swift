import RastBuildCLI

RastBuildMain.run()
