import Foundation
import Recipe
import SystemSupport

/// Small text files the configure stage writes.
package enum SystemFiles {
    /// /usr/lib/os-release (with /etc/os-release pointing at it).
    package static func osRelease(recipe: Recipe) -> String {
        """
        NAME="rastOS"
        PRETTY_NAME="rastOS (\(recipe.name))"
        ID=rastos
        ID_LIKE=arch
        BUILD_ID=\(String(recipe.recipeHash.prefix(12)))
        VARIANT_ID=\(recipe.name)
        HOME_URL="https://rastos.example/"
        RAST_VERSION=\(RastVersion.string)

        """
    }

    /// pacman.conf of the image: the package database lives inside each snapshot.
    package static func pacmanConf(repositories: [RepositorySpec], localRepository: (name: String, url: String)?) -> String {
        var text = """
            # pacman.conf of a rastOS image, written by rast-build. The package database lives
            # inside each snapshot (DBPath), so every snapshot knows its own packages while
            # /var (and with it the package cache) is shared.
            [options]
            RootDir = /
            DBPath = /usr/share/rast/db/
            CacheDir = /var/cache/pacman/pkg/
            LogFile = /var/log/pacman.log
            HookDir = /etc/pacman.d/hooks/
            GPGDir = /etc/pacman.d/gnupg/
            Architecture = x86_64
            SigLevel = Required DatabaseOptional
            LocalFileSigLevel = Optional

            """
        for repository in repositories {
            text += "\n[\(repository.name)]\n"
            if let sigLevel = repository.sigLevel { text += "SigLevel = \(sigLevel.joined(separator: " "))\n" }
            for server in repository.servers { text += "Server = \(server)\n" }
        }
        if let localRepository {
            text += "\n# The build's local repository (reachable only while building).\n#[\(localRepository.name)]\n#Server = \(localRepository.url)\n"
        }
        return text
    }
}
