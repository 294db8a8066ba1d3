"""HTTP routes, one module per resource; each handler: policy, load, validate,
one domain call, explicit output shape."""
