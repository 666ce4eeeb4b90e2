from clampdsl.cli import main

main()
