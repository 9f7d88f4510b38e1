import SnapshotTree
import SystemSupport
import Testing

/// An error about the tree's state carries the error behind it, not only that error's text.
struct StateErrorTests {
    @Test func aStateFileThatDoesNotDecodeCarriesTheDecodingError() throws {
        let bytes = Array(#"{"format": 1, "snapshots": "none"}"#.utf8)
        let error = try #require(throws: SnapshotError.self) { try TreeState.decode(bytes, path: "/top/state.json") }
        let decoding = try #require(error.underlying(DecodingError.self))
        #expect(error == .corruptState(path: "/top/state.json", reason: "\(decoding)"))
        #expect(error.description == "the snapshot tree state /top/state.json cannot be read: \(decoding)")
    }
}
