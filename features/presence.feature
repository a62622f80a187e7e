Feature: Presence
  SUBSCRIBE/NOTIFY (RFC 6665) for the presence package: the watcher subscribes through the server, the
  watched phone accepts and NOTIFYs PIDF documents (RFC 3863) as its status changes.

  Scenario: Alice watches Bob's presence
    Given Alice uses Squirrel350 phone
    Given Bob uses Chipmunk5000 phone
    When Alice watches Bob's presence
    Then Bob receives SUBSCRIBE
    And Alice receives NOTIFY
    And Alice sees Bob as available
    When Bob sets presence to busy
    Then Alice sees Bob as busy
    When Bob sets presence to offline
    Then Alice sees Bob as offline

  Scenario: A phone in a call is busy
    Given Alice uses Squirrel350 phone
    Given Bob uses Chipmunk5000 phone
    Given Carol uses OtterSoft phone
    When Bob calls Carol
    And Carol answers the phone
    When Alice watches Carol's presence
    Then Alice sees Carol as busy
    When Carol sets presence to available
    Then Alice sees Carol as available
    Then Bob hangs up the phone
