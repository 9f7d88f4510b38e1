import Testing

/// Every test that builds an image, run one at a time: on two cores, parallel image builds and
/// QEMU boots only slow each other down (the trait applies to the nested suites).
@Suite(.serialized) struct ImageBuilds {}
