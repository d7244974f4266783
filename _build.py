import dataclasses, sys
from benchmarks import config, datasets
size = dataclasses.replace(config.SIZES["large"], named=sys.argv[1])
d = datasets.ensure(size)
print(d)
