from gxwf.cli import main

main()
