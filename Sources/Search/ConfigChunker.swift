import Foundation
import SystemSupport
#if canImport(Glibc)
import Glibc
#endif

/// Splits configuration files into what `rast search --config` finds: each run of comment
/// lines is one chunk, each setting line (`key = value`, `Key value`, `[section]`) another,
/// each with its file and first line. Only text files that everybody may read are indexed
/// (so the index never holds what /etc/shadow or a private key says), up to 128 KiB and
/// 400 chunks a file (longer files are tables of data rather than settings).
package enum ConfigChunker {
    package static let maximumFileSize = 128 * 1024
    package static let maximumChunks = 400
    /// Directories under /etc whose files are key material or binary databases.
    package static let skippedDirectories: Set<String> = ["pacman.d/gnupg", "ssl/private", "ssl/certs", "ca-certificates", "rast/keys"]

    /// The chunks of one file's text; `path` is how results name the file.
    package static func chunks(of text: String, path: String) -> [SearchDocument] {
        var documents: [SearchDocument] = []
        var comment: [String] = []
        var commentLine = 0
        func flushComment() {
            if !comment.isEmpty {
                documents.append(SearchDocument(kind: .config, name: path, text: comment.joined(separator: " "), path: path, line: commentLine))
            }
            comment = []
        }
        var number = 0
        for raw in text.split(separator: "\n", omittingEmptySubsequences: false) {
            number += 1
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty {
                flushComment()
                continue
            }
            if let marker = ["#", ";", "//"].first(where: { line.hasPrefix($0) }) {
                let body = line.dropFirst(marker.count).trimmingCharacters(in: CharacterSet(charactersIn: "#;/ \t"))
                if comment.isEmpty { commentLine = number }
                if !body.isEmpty { comment.append(body) }
                continue
            }
            flushComment()
            documents.append(SearchDocument(kind: .config, name: path, text: String(line.prefix(400)), path: path, line: number))
            if documents.count >= maximumChunks { return documents }
        }
        flushComment()
        return Array(documents.prefix(maximumChunks))
    }

    /// The files below `directory` to index, as paths relative to it, sorted; with the
    /// fingerprint of each (size and modification time), which says when to read it again.
    package static func files(under directory: String) -> [(path: String, fingerprint: String)] {
        guard let enumerator = FileManager.default.enumerator(atPath: directory) else { return [] }
        var found: [(String, String)] = []
        while let relative = enumerator.nextObject() as? String {
            if skippedDirectories.contains(relative) {
                enumerator.skipDescendants()
                continue
            }
            var info = stat()
            guard lstat(directory + "/" + relative, &info) == 0, info.st_mode & S_IFMT == S_IFREG,
                  info.st_mode & 0o004 != 0, info.st_size <= maximumFileSize else { continue }
            found.append((relative, "\(info.st_size):\(info.st_mtim.tv_sec).\(info.st_mtim.tv_nsec)"))
        }
        return found.sorted { $0.0 < $1.0 }
    }

    /// The chunks of a file on disk, or none when it is not text.
    package static func chunks(ofFile file: String, path: String) -> [SearchDocument] {
        guard let bytes = try? Files.read(file), !bytes.prefix(4096).contains(0),
              let text = String(bytes: bytes, encoding: .utf8) else { return [] }
        return chunks(of: text, path: path)
    }

    /// A service definition (`/etc/rast/services/NAME.toml`): one document named after the
    /// service, whose text is the file's comments and values (its keys and TOML syntax left out).
    package static func service(ofFile file: String, path: String) -> SearchDocument? {
        guard let text = try? Files.readString(file) else { return nil }
        var words: [String] = []
        for raw in text.split(separator: "\n") {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.hasPrefix("#") {
                words.append(line.trimmingCharacters(in: CharacterSet(charactersIn: "# \t")))
            } else if let equals = line.firstIndex(of: "=") {
                words.append(line[line.index(after: equals)...].trimmingCharacters(in: CharacterSet(charactersIn: " \t\"'[],")))
            }
        }
        let name = ((path as NSString).lastPathComponent as NSString).deletingPathExtension
        return SearchDocument(kind: .service, name: name, text: (["service", name] + words.filter { !$0.isEmpty }).joined(separator: " "),
                              path: path, line: 1)
    }
}
