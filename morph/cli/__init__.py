"""The ``morph`` command line. One module per subcommand; no logic here beyond argument
parsing, calling the library and turning errors into messages and exit codes."""
