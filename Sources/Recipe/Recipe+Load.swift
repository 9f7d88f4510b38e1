import Foundation
import SystemSupport
import TOML

extension Recipe {
    /// Reads and validates the recipe at `path`. Relative paths in the recipe are resolved
    /// against its directory; `output.directory` against `workingDirectory` (default: the
    /// current directory). Throws `RecipeErrors` with every problem, or the error of reading.
    package static func load(path: String, workingDirectory: String? = nil) throws -> Recipe {
        let bytes = try Files.read(path)
        let cwd = workingDirectory ?? currentDirectory()
        let absolute = Paths.resolve(path, relativeTo: cwd)
        return try parse(bytes: bytes, file: path, baseDirectory: Paths.directory(of: absolute), workingDirectory: cwd)
    }

    /// Parses and validates recipe text; `file` names it in errors.
    package static func parse(text: String, file: String, baseDirectory: String,
                             workingDirectory: String? = nil) throws(RecipeErrors) -> Recipe {
        try parse(bytes: Array(text.utf8), file: file, baseDirectory: baseDirectory, workingDirectory: workingDirectory)
    }

    /// Parses and validates the bytes of a recipe file (which must be UTF-8).
    package static func parse(bytes: [UInt8], file: String, baseDirectory: String,
                             workingDirectory: String? = nil) throws(RecipeErrors) -> Recipe {
        let document: TOMLTable
        do {
            document = try TOMLDocument.parse(bytes: bytes, file: file)
        } catch {
            throw RecipeErrors([RecipeError(error)])
        }
        let cwd = workingDirectory ?? currentDirectory()
        let base = Paths.resolve(baseDirectory, relativeTo: cwd)
        let decoder = RecipeDecoder(baseDirectory: base, workingDirectory: cwd)
        let recipe = decoder.decode(document, file: file, hash: SHA256.hash(bytes))
        guard let recipe, decoder.diagnostics.errors.isEmpty else {
            throw RecipeErrors(decoder.diagnostics.errors)
        }
        return recipe
    }

    static func currentDirectory() -> String {
        FileManager.default.currentDirectoryPath
    }
}
