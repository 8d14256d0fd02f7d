"""Drag-and-drop formats shared by the palette, the canvas and the main window."""
BLOCK_MIME = "application/x-deepwire-block"   # payload: the block type name, UTF-8
FRAGMENT_MIME = "application/x-deepwire-fragment"  # payload: JSON of nodes + wires (copy/paste)
MODULE_PREFIX = "module:"   # BLOCK_MIME payload of an instance of the project's module: "module:" + its name
