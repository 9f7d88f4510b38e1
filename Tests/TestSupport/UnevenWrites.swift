/// Feeds bytes to a streaming writer the way a network or a pipe delivers them: in pieces of
/// uneven sizes, so that a writer's buffering meets every boundary.
package enum UnevenWrites {
    /// Hands `bytes` to `write` in order: one byte first, then pieces of `next(size before)`
    /// bytes (the last one what is left).
    package static func feed(_ bytes: [UInt8], next: (Int) -> Int, to write: (UnsafeRawBufferPointer) throws -> Void) rethrows {
        var offset = 0
        var step = 1
        while offset < bytes.count {
            let count = min(step, bytes.count - offset)
            try bytes.withUnsafeBytes { try write(UnsafeRawBufferPointer(rebasing: $0[offset..<offset + count])) }
            offset += count
            step = next(step)
        }
    }
}
