/// Resources to release in reverse order of acquisition: mounts, loop devices, temporary
/// files. Stages push each resource right after acquiring it and call `run()` in a `defer`,
/// so success, an error and an interruption all release the same way.
package final class Teardown {
    private var actions: [(what: String, action: () throws -> Void)] = []

    package init() {}

    package func push(_ what: String, _ action: @escaping () throws -> Void) {
        actions.append((what, action))
    }

    /// Releases everything pushed so far, newest first. Keeps going after a failure and
    /// returns the failures (each also logged) so that one stuck mount cannot strand the rest.
    @discardableResult
    package func run() -> [String] {
        var failures: [String] = []
        while let (what, action) = actions.popLast() {
            do {
                try action()
            } catch {
                let message = "could not release \(what): \(error)"
                RastLog.logger.error("\(message)")
                failures.append(message)
            }
        }
        return failures
    }

    deinit { run() }
}
