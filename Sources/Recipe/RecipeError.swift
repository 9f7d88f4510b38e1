import TOML

/// One problem in a recipe: where (file, line, column), which key, and what is wrong.
package typealias RecipeError = TOMLProblem

/// Every problem found in a recipe, sorted by position.
package typealias RecipeErrors = TOMLProblems
