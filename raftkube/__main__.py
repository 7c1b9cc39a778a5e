from raftkube.cli import main

main()
