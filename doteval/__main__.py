from doteval._cli import main

main()
