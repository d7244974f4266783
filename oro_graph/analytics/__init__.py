"""Analysis kit for ORO data: ``metrics`` (pure pandas/numpy) and ``plots`` (matplotlib).

Import the submodules you need (``from oro_graph.analytics import metrics``); importing the
package itself loads neither pandas nor matplotlib.
"""
