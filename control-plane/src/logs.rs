//! Where `serve` writes its log: standard output by default (a container's or systemd's log
//! collector takes it from there), or, with `--log-dir`, one file per UTC day that it deletes
//! after [`LOG_DAYS`] days, as the privacy policy promises for application logs.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::clock::Clock;
use crate::db::stats::{DAY_MS, day_of};

/// How many days of log files are kept: today's and the 13 before.
pub const LOG_DAYS: i64 = 14;

/// A log written to `humanproof-YYYY-MM-DD.log` in a folder, a new file each UTC day; on
/// opening a day's file, the files of days past [`LOG_DAYS`] are deleted.
#[derive(Debug)]
pub struct DailyLogFiles {
    dir: PathBuf,
    clock: Clock,
    current: Option<(String, File)>,
}

impl DailyLogFiles {
    /// Logs into `dir`, which is created if missing.
    pub fn new(dir: &Path, clock: Clock) -> io::Result<Self> {
        fs::create_dir_all(dir)?;
        Ok(Self {
            dir: dir.to_owned(),
            clock,
            current: None,
        })
    }

    /// Today's file, opened (and the old ones deleted) when the day changed.
    fn file(&mut self) -> io::Result<&mut File> {
        let now = self.clock.now_ms();
        let today = day_of(now);
        if self.current.as_ref().is_none_or(|(day, _)| *day != today) {
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.dir.join(format!("humanproof-{today}.log")))?;
            prune(&self.dir, &day_of(now - (LOG_DAYS - 1) * DAY_MS))?;
            self.current = Some((today, file));
        }
        Ok(&mut self.current.as_mut().expect("opened above").1)
    }
}

impl Write for DailyLogFiles {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file()?.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.current {
            Some((_, file)) => file.flush(),
            None => Ok(()),
        }
    }
}

/// Deletes the log files of days before `first_day_kept` (`YYYY-MM-DD`); other files in the
/// folder are left alone.
fn prune(dir: &Path, first_day_kept: &str) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        let day = path
            .file_name()
            .and_then(|name| name.to_str())
            .and_then(|name| name.strip_prefix("humanproof-"))
            .and_then(|name| name.strip_suffix(".log"));
        if day.is_some_and(|day| day.len() == 10 && day < first_day_kept) {
            fs::remove_file(&path)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_a_day_and_none_older_than_fourteen_days() {
        let dir =
            std::env::temp_dir().join(format!("humanproof-logs-{}", crate::secrets::new_id()));
        let clock = Clock::manual(1_800_000_000_000);
        let mut log = DailyLogFiles::new(&dir, clock.clone()).unwrap();
        fs::write(dir.join("keep-me.txt"), "not a log").unwrap();
        let mut days = Vec::new();
        for _ in 0..20 {
            writeln!(log, "a line").unwrap();
            days.push(day_of(clock.now_ms()));
            clock.advance(DAY_MS);
        }
        let mut files: Vec<String> = fs::read_dir(&dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        files.sort();
        let kept: Vec<String> = days[6..]
            .iter()
            .map(|day| format!("humanproof-{day}.log"))
            .chain(["keep-me.txt".to_owned()])
            .collect();
        assert_eq!(
            files, kept,
            "the last 14 days' files, and nothing else touched"
        );
        assert_eq!(fs::read_to_string(dir.join(&kept[13])).unwrap(), "a line\n");
        fs::remove_dir_all(&dir).unwrap();
    }
}
