"""Deepwire designer (PySide6). Arrives with the designer issue."""
