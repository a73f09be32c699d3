/**
 * Common given names (English-speaking, European, South and East Asian, Hispanic, Arabic),
 * lower-case. A value's first word being one of these turns "two capitalised words" (which cities
 * and products are too) into "probably a person". A short list is enough: it only boosts a score.
 */
export const FIRST_NAMES: ReadonlySet<string> = new Set([
  'james', 'john', 'robert', 'michael', 'william', 'david', 'richard', 'joseph', 'thomas', 'charles',
  'christopher', 'daniel', 'matthew', 'anthony', 'mark', 'donald', 'steven', 'paul', 'andrew', 'joshua',
  'kevin', 'brian', 'george', 'edward', 'ronald', 'timothy', 'jason', 'jeffrey', 'ryan', 'jacob',
  'gary', 'nicholas', 'eric', 'jonathan', 'stephen', 'larry', 'justin', 'scott', 'peter', 'oliver',
  'harry', 'jack', 'noah', 'liam', 'lucas', 'samuel', 'benjamin', 'alexander', 'henry', 'adam',
  'mary', 'patricia', 'jennifer', 'linda', 'elizabeth', 'barbara', 'susan', 'jessica', 'sarah', 'karen',
  'nancy', 'lisa', 'betty', 'margaret', 'sandra', 'ashley', 'kimberly', 'emily', 'donna', 'michelle',
  'dorothy', 'carol', 'amanda', 'melissa', 'deborah', 'stephanie', 'rebecca', 'laura', 'sharon', 'cynthia',
  'kathleen', 'amy', 'anna', 'emma', 'olivia', 'sophia', 'isabella', 'charlotte', 'amelia', 'alice',
  'grace', 'chloe', 'lucy', 'hannah', 'julia', 'claire', 'maria', 'jose', 'juan', 'carlos',
  'luis', 'miguel', 'sofia', 'lucia', 'pierre', 'marie', 'hans', 'anne', 'giulia', 'marco',
  'mohammed', 'muhammad', 'ahmed', 'ali', 'fatima', 'omar', 'aisha', 'raj', 'priya', 'amit',
  'wei', 'li', 'ming', 'yuki', 'hiroshi', 'kenji', 'min', 'jin', 'olga', 'ivan',
]);
