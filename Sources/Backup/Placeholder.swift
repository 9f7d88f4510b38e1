enum BackupPlaceholder {}
