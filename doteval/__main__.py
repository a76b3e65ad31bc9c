from doteval.cli import main

main()
