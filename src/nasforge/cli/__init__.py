"""The ``nasforge`` command line; one module per subcommand."""
