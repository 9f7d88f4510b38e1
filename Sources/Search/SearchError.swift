/// What can go wrong in `rast search`, said so that the reader knows which file and why.
package enum SearchError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The embedding table is not where rast looked.
    case missingTable(path: String, reason: String)
    /// The embedding table (or its vocabulary) is damaged or of another format.
    case badTable(String)
    /// An index file that cannot be read (it is rebuilt; this is only reported in debug output).
    case badIndex(path: String, reason: String)

    package var description: String {
        switch self {
        case .missingTable(let path, let reason):
            return "the search table \(path) cannot be read (\(reason)); it comes with the rast package (or set RAST_SEARCH_DATA to the directory holding \(EmbeddingTable.fileName))"
        case .badTable(let reason):
            return "the search table is unusable: \(reason)"
        case .badIndex(let path, let reason):
            return "the search index \(path) is unusable: \(reason)"
        }
    }
}
