"""nosetrack on a Ray Serve cluster (the `ray` extra): `deployment` builds the Serve application, `launch`
deploys it for `nosetrack serve --ray`. Nothing here is imported by the single-machine server."""
