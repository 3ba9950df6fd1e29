from fpverify.cli import main

main()
