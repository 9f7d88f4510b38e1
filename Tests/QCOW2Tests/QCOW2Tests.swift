// QCOW2 tests: QCOW2WriterTests (writer output checked by qemu-img), QCOW2ReaderTests
// (images from qemu-img, malformed images) and QCOW2FuzzTests (mutated images).
