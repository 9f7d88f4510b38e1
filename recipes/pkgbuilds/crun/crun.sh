#!/bin/sh
# crun with its own copies of the libraries it was built against (/usr/lib/crun/lib).
LD_LIBRARY_PATH=/usr/lib/crun/lib exec /usr/lib/crun/crun "$@"
