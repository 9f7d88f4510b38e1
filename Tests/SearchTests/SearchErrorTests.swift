import Foundation
@testable import Search
import SystemSupport
import Testing

/// A search table that cannot be read: the error says which file, and carries why.
struct SearchErrorTests {
    @Test func aMissingTableCarriesTheSystemsError() throws {
        let path = "/nonexistent/" + EmbeddingTable.fileName
        let error = try #require(throws: SearchError.self) { try EmbeddingTable(path: path) }
        let system = try #require(error.underlying(SystemError.self))
        #expect(system.errno == ENOENT)
        #expect(error.description.hasPrefix("the search table \(path) cannot be read (\(system)); it comes with the rast package"))
    }
}
