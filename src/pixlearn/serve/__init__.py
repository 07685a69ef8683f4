"""The REST service and its static web page."""
