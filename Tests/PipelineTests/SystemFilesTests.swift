import Packages
import Pipeline
import Recipe
import Testing

/// The small files rast-build writes into every image, read back by what reads them on the
/// installed system.
@Suite struct SystemFilesTests {
    /// The image's pacman.conf, through rast's pacman.conf parser: the package database inside
    /// the snapshot, the recipe's repositories, and the build's local repository commented out.
    @Test func theImagesPacmanConfReadsBack() throws {
        let text = SystemFiles.pacmanConf(
            repositories: [RepositorySpec(name: "core", servers: ["https://mirror.example/$repo/os/$arch"]),
                           RepositorySpec(name: "extra", servers: ["https://mirror.example/$repo/os/$arch"], sigLevel: ["Optional"])],
            localRepository: (name: "rast-local", url: "http://127.0.0.1:8080/repo"))
        let config = try PacmanConfig.parse(text, path: "/etc/pacman.conf")
        #expect(config.warnings.isEmpty, "\(config.warnings)")
        #expect(config.databasePath == "/usr/share/rast/db/")
        #expect(config.repositories.map(\.name) == ["core", "extra"])
        #expect(config.repositories.first?.servers == ["https://mirror.example/core/os/x86_64"])
        #expect(config.repositories.last?.sigLevel == ["Optional"])
    }
}
