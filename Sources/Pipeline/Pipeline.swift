// Pipeline module: the stages of rast-build. The disk, boot loader and account code it shares
// with rast-install lives in ImageSupport.
import ImageSupport

/// The boot loader stage is ImageSupport's installer, which rast-install runs too.
package typealias BootLoaderStage = BootLoaderInstaller
