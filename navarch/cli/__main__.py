from navarch.cli.main import main

main()
