"""EchoBench: an open benchmark harness for synthetic echocardiography images."""

__version__ = "0.1.0"
