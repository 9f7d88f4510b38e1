// QCOW2 module.
