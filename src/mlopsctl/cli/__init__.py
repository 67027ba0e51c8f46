"""The `mlopsctl` command line: thin commands over the parts."""
