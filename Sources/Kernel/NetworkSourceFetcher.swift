import Curl
import Foundation
import Git
import SystemSupport

/// Fetches kernel sources with libcurl (https tarballs, resumed after interruptions) and
/// libgit2 (clone once, then fetch; check out the ref detached).
package struct NetworkSourceFetcher: SourceFetcher {
    package init() {}

    package func download(url: String, to destination: String, progress: ProgressReporter) throws {
        progress.begin("kernel: downloading \(url)")
        let stopwatch = Stopwatch()
        _ = try Curl.download(url, to: destination) { update in
            try checkCancelled()
            progress.update(ProgressUpdate(task: "kernel: downloading", completed: Int64(update.bytes),
                                           total: update.total.map(Int64.init), unit: .bytes))
        }
        progress.end("kernel: download", summary: "done in \(stopwatch.formatted)")
    }

    package func checkout(url: String, ref: String, into directory: String, progress: ProgressReporter) throws -> String {
        let repository: Repository
        if Files.exists(directory + "/.git") {
            progress.note("kernel: fetching \(url)")
            repository = try Repository(opening: directory)
            try repository.fetch()
        } else {
            progress.note("kernel: cloning \(url)")
            try? Files.removeTree(directory)
            repository = try Repository.clone(from: url, to: directory)
        }
        // A branch name means the remote's branch, not a stale local one.
        let commit: String
        if let remote = try? repository.resolve("origin/" + ref) { commit = remote } else { commit = try repository.resolve(ref) }
        try repository.checkout(detached: commit, force: true)
        return commit
    }
}
