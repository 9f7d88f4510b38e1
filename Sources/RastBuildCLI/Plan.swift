import ArgumentParser
import Foundation
import CommandLineSupport
import Recipe

/// `rast-build plan RECIPE`: the stages a build runs and what each does with this recipe.
struct Plan: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show the stages a build of a recipe runs and what each will do.",
        discussion: """
            Reads and checks RECIPE like `rast-build validate`, then prints the stages in \
            order (kernel, packages, rootfs, configure, disk, boot loader, outputs, boot test) \
            with the recipe's values each one uses. Skipped stages say why. Nothing is built.
            """)

    @Argument(help: ArgumentHelp("The recipe file to plan.", valueName: "recipe"))
    var recipe: String

    @OptionGroup var global: GlobalOptions

    func run() throws {
        let loaded = try RecipeLoading.load(recipe)
        print(Plan.render(loaded), terminator: "")
    }

    /// The plan as text: a heading, then each stage numbered, details indented below it.
    static func render(_ recipe: Recipe) -> String {
        let stages = recipe.plan()
        let width = PlannedStage.Kind.allCases.map(\.rawValue.count).max() ?? 0
        var text = "Plan for \(recipe.name) (\(recipe.file), sha256 \(recipe.recipeHash.prefix(12))):\n"
        for (index, stage) in stages.enumerated() {
            let name = stage.kind.rawValue.padding(toLength: width, withPad: " ", startingAt: 0)
            text += "\(index + 1). \(name)  \(stage.summary)\n"
            for detail in stage.details {
                text += String(repeating: " ", count: width + 5) + "- " + detail + "\n"
            }
        }
        return text
    }
}
