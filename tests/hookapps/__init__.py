"""Two app configs whose ``ready()`` record their order, for the start-up hook's contract test."""
