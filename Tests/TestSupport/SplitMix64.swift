import Foundation

/// A small deterministic random number generator (SplitMix64), so that a failing random
/// schedule (of kills, of mutations) can be replayed from its seed.
package struct SplitMix64: RandomNumberGenerator, Sendable {
    package var state: UInt64

    package init(state: UInt64) { self.state = state }

    /// Seeded from the environment variable `variable` when it holds a number (to replay a
    /// failure), else from `seed`.
    package init(environment variable: String, default seed: UInt64) {
        self.init(state: ProcessInfo.processInfo.environment[variable].flatMap(UInt64.init) ?? seed)
    }

    package mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
