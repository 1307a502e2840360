from services.cli.main import main

if __name__ == "__main__":  # spawned workers (embedder) re-import the main module
    main()
