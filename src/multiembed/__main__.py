from multiembed.cli.main import main

main()
