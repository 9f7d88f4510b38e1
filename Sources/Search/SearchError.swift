import SystemSupport

/// What can go wrong in `rast search`, said so that the reader knows which file and why.
package enum SearchError: CausedError, CustomStringConvertible, Sendable {
    /// The embedding table is not where rast looked; `cause` says why it cannot be read.
    case missingTable(path: String, cause: any Error)
    /// The embedding table (or its vocabulary) is damaged or of another format.
    case badTable(String)
    /// An index file that cannot be read (it is rebuilt; this is only reported in debug output).
    case badIndex(path: String, reason: String)

    package var description: String {
        switch self {
        case .missingTable(let path, let cause):
            return "the search table \(path) cannot be read (\(cause)); it comes with the rast package (or set RAST_SEARCH_DATA to the directory holding \(EmbeddingTable.fileName))"
        case .badTable(let reason):
            return "the search table is unusable: \(reason)"
        case .badIndex(let path, let reason):
            return "the search index \(path) is unusable: \(reason)"
        }
    }

    package var cause: (any Error)? {
        if case .missingTable(_, let cause) = self { return cause }
        return nil
    }
}
