"""
The built-in request stages, one per module. Each is registered as a plugin
in C{sipedge/plugins/sipedge_stages.py}.
"""
