from gitops.cli.commands import main

main()
