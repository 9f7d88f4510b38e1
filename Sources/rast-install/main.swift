import RastInstallCLI

RastInstallMain.run()
