"""The canvas: a QGraphicsScene mirroring the engine graph, its items, and the view."""
from .items import EdgeItem, NodeItem, PortItem
from .scene import GraphScene
from .view import GraphView

__all__ = ["EdgeItem", "GraphScene", "GraphView", "NodeItem", "PortItem"]
