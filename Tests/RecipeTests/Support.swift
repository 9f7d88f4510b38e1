import Recipe
import Testing
import TOML

/// The package's root directory (this file is Tests/RecipeTests/Support.swift).
let packageRoot: String = {
    var parts = "\(#filePath)".split(separator: "/", omittingEmptySubsequences: false)
    parts.removeLast(3)
    return parts.joined(separator: "/")
}()

let fixtures = packageRoot + "/Tests/RecipeTests/Fixtures/broken"

/// The smallest valid recipe; tests append tables to it (it is three lines long).
let minimalText = """
    name = "t"
    [packages]
    install = ["busybox"]

    """

/// A real ed25519 public key (its private half was discarded).
let demoKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINydRzvC4WcnJQptV2yOfxGjN4msUhY0xeebqTFwlKZH admin@rastos-demo"

func decode(_ text: String, base: String = "/srv/recipes", cwd: String = "/home/builder") throws(RecipeErrors) -> Recipe {
    try Recipe.parse(text: text, file: "r.toml", baseDirectory: base, workingDirectory: cwd)
}

/// Every problem of a recipe that must not parse; a test failure when it does.
func problems(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) -> [RecipeError] {
    do {
        let recipe = try decode(text)
        Issue.record("expected problems, but the recipe parsed: \(recipe.name)", sourceLocation: sourceLocation)
        return []
    } catch {
        return error.errors
    }
}

/// The one problem of a recipe; a test failure when there are none or several.
func problem(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) -> RecipeError? {
    let found = problems(text, sourceLocation: sourceLocation)
    if found.count != 1 {
        Issue.record("expected one problem, found \(found.count):\n\(RecipeErrors(found))", sourceLocation: sourceLocation)
    }
    return found.first
}

/// The one problem of a recipe, which must be at `keyPath` and `position` and say `message`;
/// returned for further checks.
@discardableResult
func expectProblem(_ text: String, _ keyPath: String, at position: TOMLPosition, _ message: String,
                   sourceLocation: SourceLocation = #_sourceLocation) -> RecipeError? {
    let error = problem(text, sourceLocation: sourceLocation)
    #expect(error?.keyPath == keyPath, sourceLocation: sourceLocation)
    #expect(error?.position == position, sourceLocation: sourceLocation)
    #expect(error?.message == message, sourceLocation: sourceLocation)
    return error
}

func at(_ line: Int, _ column: Int, file: String = "r.toml") -> TOMLPosition {
    TOMLPosition(file: file, line: line, column: column)
}
