"""Review of low-confidence cells: the decisions store (re-applied on every run), the web
app (`scanforms review`), and the Label Studio round trip.

Importing this package is cheap: the web app's dependencies load only in `app`.
"""
