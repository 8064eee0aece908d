"""The chaos suite (``make stress``): not collected by pytest (testpaths = ["tests"])."""
