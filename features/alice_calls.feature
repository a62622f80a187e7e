Feature: Alice Makes Calls

  Scenario: Alice calls Bob
    Given Alice uses Squirrel350 phone
    Given Bob uses Chipmunk5000 phone
    When Alice calls Bob
    Then Bob answers the phone
    And Alice and Bob talk for 10 seconds
    Then Bob hangs up the phone
    Then Alice receives BYE
