import RastCLI

RastMain.run()
